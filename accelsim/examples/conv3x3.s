; A 3x3 convolution tile: 8x8x4 u8 input (zero point 128), 8 s8 filters, fp32 requant with ReLU.
; The load, compute and store units hand over through dependency tokens.
.equ IMG      0x0000          ; input image, NHWC u8, 8*8*4 bytes
.equ WEIGHTS  0x0100          ; 8 filters x (3*3*4) s8 weights, dense
.equ PARAMS   0x0200          ; bias[8], fp32 scale[8], shift[8] as s32 words
.equ RESULT   0x0300          ; output, NHWC u8, 8*8*8 bytes

setup:
    SETWIN in_h=8 in_w=8 in_c=4 k_h=3 k_w=3 pad_top=1 pad_left=1 out_w=8 pad_value=128
    LOADW sram=0 dram=WEIGHTS count=288 format=dense dtype=s8
    LOAD buf=PRM dtype=s32 dram=PARAMS sram=0 x=24 y=1 y_stride=24
    LOADWIN buf=INP dtype=u8 dram=IMG sram=0 pix0=0 npix=64 c0=0 nc=4 push_next
compute:
    CONFIG a=u8 w=s8 o=u8 a_zp=128 o_zp=0 mode=fp32 clamp_min=0 clamp_max=255
    GEMM inp=0 wgt=0 acc=0 m=64 n=8 k=36 pop_prev
    REQUANT src=0 dst_buf=OUT dst=0 prm=0 m=64 n=8 push_next
drain:
    STORE buf=OUT dtype=u8 dram=RESULT sram=0 x=512 y=1 y_stride=512 pop_prev
    HALT
