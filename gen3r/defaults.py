"""The official model's clip: one owner for the defaults every layer falls back to (torch-free, so the
command line can read it without loading models)."""

#: Frames of one clip of the released model (4k + 1; the paper's setting).
DEFAULT_NUM_FRAMES = 49
#: Working resolution of the released model (height = width, a multiple of 112).
DEFAULT_SIZE = 560
