"""The Pulumi program: load the stack config, build the platform, export its outputs."""

import pulumi

from stack.config import load_stack_config
from stack.platform import Platform

platform = Platform(load_stack_config())
for key, value in platform.outputs().items():
    pulumi.export(key, value)
