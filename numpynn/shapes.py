"""The sizes of the data every numpynn network reads and writes: 28x28 greyscale digits, flattened, 10 classes,
and the dev split held out of the training images.

One place for them, so the seed, the model file checks and the web page agree. Layers and the training loop
take their sizes as arguments and work for any D and K; these are MNIST's, the defaults and the checks.
"""
SIDE = 28  # pixels per row and per column of a digit
D = SIDE * SIDE  # 784 inputs: one per pixel, the picture flattened row by row
K = 10  # classes: the digits 0 to 9
DEV_SIZE = 10_000  # training images held out as the dev set, unless a caller says otherwise (as the seed did)
