"""Deploying the autoscaler (the `autoscaler` package) into the cluster: its args (`args`) and the component that
declares its CRD, RBAC, thresholds ConfigMap, Deployment, network policies and one VariantAutoscaling per model
(`component`)."""
