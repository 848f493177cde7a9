"""Explanation maps of classification models: Grad-CAM and occlusion sensitivity (MONAI), on the network grid."""
