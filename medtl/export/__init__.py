"""Deployment: exported networks (ONNX, torch.export), their preprocessing spec, the parity gate, the model card."""
