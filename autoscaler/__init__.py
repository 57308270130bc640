"""The in-cluster autoscaler: a plain Python package that never imports pulumi, stack or components."""
