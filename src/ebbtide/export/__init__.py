"""Other platforms' configuration written from one ebbtide.yaml: SageMaker Application Auto Scaling, Kubernetes.

Nothing here places replicas (that is ``providers/``); these modules translate policies into what another
autoscaler runs, and read it back (``import sagemaker``).
"""
