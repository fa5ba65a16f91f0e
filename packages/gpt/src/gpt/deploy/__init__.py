"""gpt's deployment stage: a run made smaller, or runnable without this code.

quantize.py   `gpt quantize`: int8 linear layers (weight-only or dynamic)
export.py     `gpt export`: ONNX or torch.export, checked against the model
"""
