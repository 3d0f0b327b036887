"""What the lowering tests share: a module around a function, so that any ATen pattern
can be compiled as a model."""

import torch


class Fn(torch.nn.Module):
    """forward(*xs) = fn(*xs, *params); params are the module's (trainable) weights."""

    def __init__(self, fn, *params):
        super().__init__()
        self.fn = fn
        self.params = torch.nn.ParameterList(params)

    def forward(self, *xs):
        return self.fn(*xs, *self.params)
