"""One package per platform part, each a pulumi.ComponentResource (`component`) beside the typed args it takes
(`args`): `gpu_operator`, `model_storage`, `monitoring`, `model_serving`, and `autoscaling`, which deploys the
`autoscaler` package. `stack/config.py` composes the args modules; `stack/platform.py` builds the components.

Shared by every part, and so kept here rather than in a part: `args` (the building blocks of the args models),
`kube` (labels, namespaces, Helm releases and network policies declared one way) and `pins` (every chart version and
image, which the objects' checkov annotations cite as `components/pins.py`).
"""
