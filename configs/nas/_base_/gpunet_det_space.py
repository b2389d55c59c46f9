# The detection-backbone search space: the paper's stage table (gpunet_mm.nas.space,
# CLASSIFICATION_STAGES) with the input size picked from a list. The neck and head come
# from the base detector config of the search, so they are not part of the space.
search_space = dict(
    type='GPUNetSpace',
    variant='detection',
    resolutions=[320, 384, 448, 512],
    # rows of the stage table can be overridden by stage number, e.g. a shallower stage 7:
    # stages=[dict(stage=7, layers=(0, 8))],
)
