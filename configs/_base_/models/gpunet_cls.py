# GPUNet ImageNet classifier (mmpretrain ImageClassifier): backbone, global pooling and the
# release's tail head. The head's widths come from the backbone's arch (in_channels=None,
# hidden_channels=None, see gpunet_mm.models.classifiers.GPUNetClassifier), so a config
# only names the tier: model = dict(backbone=dict(tier='GPUNet-1')).
model = dict(
    type='GPUNetClassifier',
    backbone=dict(type='GPUNet', tier='GPUNet-0', drop_path_rate=0.2),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='GPUNetClsHead', num_classes=1000, in_channels=None,
              hidden_channels=None, dropout=0.2,
              loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
              topk=(1, 5)))
