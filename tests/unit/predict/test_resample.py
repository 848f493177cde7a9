"""Network-grid outputs map back to every voxel of the original grid."""

import numpy as np

from medtl.predict.resample import labels_on_original_grid, to_original_grid


def test_a_ramp_survives_the_trip_to_the_network_grid_and_back():
    from medtl.config import load_config
    from medtl.io.volume import Volume
    from medtl.transforms.network_input import network_input

    config = load_config(None, ["data.dims=2", "data.image_size=[40,40]"])
    rows = np.mgrid[0:100, 0:70][0].astype(np.float32)
    prepared = network_input(Volume(rows, (1.0, 1.0), (0, 0, 0), np.eye(3)), config, "case")
    net = prepared.network_affine
    i = np.arange(40, dtype=np.float32)[:, None] * np.ones((1, 40), np.float32)
    ramp_on_network = net[0, 0] * i + net[0, 3]  # the original row index of each network pixel
    back = to_original_grid(ramp_on_network[None], net, prepared.input_affine, prepared.input_shape)[0]
    assert back.shape == (100, 70)
    assert np.abs(back - rows)[2:-2].max() < 1e-3


def test_3d_mapping_uses_world_coordinates():
    # network grid = input grid shifted by one voxel along the slice axis and twice as coarse in-plane
    input_affine = np.diag([2.0, 0.5, 0.5, 1.0])
    network_affine = np.diag([2.0, 1.0, 1.0, 1.0])
    network_affine[0, 3] = 2.0
    probs = np.zeros((2, 6, 4, 4), np.float32)
    probs[1, 2, 1, 1] = 1.0  # world (6, 1, 1)
    probs[0] = 1 - probs[1]
    labels, foreground = labels_on_original_grid(probs, network_affine, input_affine, (7, 8, 8))
    assert labels.shape == (7, 8, 8) and foreground.shape == (1, 7, 8, 8)
    assert labels[3, 2, 2] == 1  # input voxel (3, 2, 2) is world (6, 1, 1)
    assert labels[2].sum() == 0 and labels[4].sum() == 0


def test_multiclass_argmax_on_the_original_grid():
    probs = np.zeros((3, 4, 4), np.float32)
    probs[0], probs[1, :2], probs[2, 2:] = 0.2, 0.7, 0.7
    labels, foreground = labels_on_original_grid(probs, np.eye(4), np.eye(4), (4, 4))
    assert (labels[:2] == 1).all() and (labels[2:] == 2).all() and foreground.shape == (2, 4, 4)
