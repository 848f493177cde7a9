import torch

from medtl.tasks.losses import segmentation_loss


def logits_for(foreground_probability: torch.Tensor) -> torch.Tensor:
    """Two-class logits whose softmax gives this foreground probability per voxel."""
    p = foreground_probability.clamp(1e-6, 1 - 1e-6)
    return torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))], dim=1)


def test_a_lesion_free_patch_does_not_cost_a_full_dice_penalty():
    # one patch with a lesion predicted right, one lesion-free patch with a faint foreground haze
    target = torch.zeros(2, 16, 16, 16, dtype=torch.long)
    target[0, 4:8, 4:8, 4:8] = 1
    probability = torch.full((2, 16, 16, 16), 1e-3)
    probability[0][target[0] == 1] = 0.999
    loss = segmentation_loss()(logits_for(probability), target)
    # batch Dice over the foreground: < 0.1 here; per-image Dice with background gives 0.26, mostly for the haze
    assert loss.item() < 0.1


def test_the_loss_ranks_a_right_segmentation_below_a_wrong_one():
    target = torch.zeros(2, 16, 16, 16, dtype=torch.long)
    target[:, 4:8, 4:8, 4:8] = 1
    right = torch.where(target == 1, 0.99, 0.01).float()
    shifted = torch.roll(right, shifts=6, dims=1)
    empty = torch.full_like(right, 0.01)
    loss = segmentation_loss()
    assert loss(logits_for(right), target) < loss(logits_for(shifted), target)
    assert loss(logits_for(right), target) < loss(logits_for(empty), target)
