"""The GPU Operator part: its args (`args`) and the component that installs the pinned gpu-operator chart in a
privileged namespace, with the chart values made from the args (`component`)."""
