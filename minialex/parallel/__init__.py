"""minialex.parallel: running one network on several devices.

``two_column``: the paper's model parallelism (section 3.2), each of AlexNet's two columns on
its own device, exchanging activations only where the table in minialex/models/architecture.py
says a layer reads both columns. ``AlexNet(devices=(a, b))`` uses it. Explained in
docs/two-gpu.md.
"""
