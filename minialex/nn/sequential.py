"""Sequential: layers applied one after the other; backward runs them in reverse
(the chain rule, one layer at a time). Explained in docs/layers/README.md."""

from .module import Module


class Sequential(Module):
    """``Sequential(a, b, c)`` computes c(b(a(x))); children are named "0", "1", ...,
    or pass ``(name, module)`` pairs to name them."""

    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            name, module = layer if isinstance(layer, tuple) else (str(i), layer)
            setattr(self, name, module)

    def __iter__(self):
        return iter(self._modules.values())

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def forward(self, x):
        """x -> y_D = f_D(...f_1(x)), each layer's output the next one's input."""
        for layer in self._modules.values():
            x = layer.forward(x)
        return x

    def backward(self, dout):
        """dout = dL/dy_D -> dL/dx, through the layers in reverse."""
        # dL/dy_{i-1} = (dy_i/dy_{i-1})^T dL/dy_i, y_i the output of layer i and y_0 = x (as in
        # docs/layers/README.md, "The chain rule through Sequential"): each layer's input gradient
        # is the upstream gradient of the layer before
        for layer in reversed(list(self._modules.values())):
            dout = layer.backward(dout)
        return dout
