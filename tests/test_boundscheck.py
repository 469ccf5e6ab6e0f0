"""The kernels run with bounds checks off; here they run with Numba's bounds checking on
(NUMBA_BOUNDSCHECK=1, compiled afresh in a subprocess) over the fuzz corpus, valid programs and
mutants alike.  Any index a kernel computes outside its arrays -- something the validation let
through -- raises IndexError there, and the test fails naming the program."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = 1500

SCRIPT = f"""
import numpy as np
import isa
from accelsim.chip import Program, SimError
from tests.test_fuzz import SIM, SEED, corpus
checked = 0
for k, (prog, image, _) in enumerate(corpus(SEED + 1000, {PROGRAMS}, mutated=0.5)):
    try:
        SIM.run(Program(isa.encode_program(prog), image))
    except SimError:
        pass
    except IndexError as e:
        print("program", k, e)
        print("\\n".join(isa.format_instruction(i) for i in prog))
        raise SystemExit(1)
    checked += 1
print("checked", checked)
"""


def test_no_kernel_indexes_outside_its_arrays(tmp_path):
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    r = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"checked {PROGRAMS}" in r.stdout
