"""accelsim's executable specification: the instruction set, its golden semantics and the
reference quantizer.  Depends on nothing else of the project."""

from .asm import assemble, disassemble, format_instruction
from .encoding import Instruction, decode, decode_program, encode, encode_program
from .errors import AssemblyError, DecodeError, EncodeError, ExecError, IsaError
from .semantics import MachineState, run, step
from .table import BY_MNEMONIC, BY_OPCODE, OPS

__all__ = [
    "assemble", "disassemble", "format_instruction", "Instruction", "decode", "decode_program",
    "encode", "encode_program", "AssemblyError", "DecodeError", "EncodeError", "ExecError",
    "IsaError", "MachineState", "run", "step", "BY_MNEMONIC", "BY_OPCODE", "OPS",
]
