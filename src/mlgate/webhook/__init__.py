"""The Kubernetes validating admission webhook (issue 12): a cluster asks mlgate before it
runs a workload whose manifest references a model.

``references`` finds model references in Kubernetes objects, ``targets`` reads what each
names, ``policy`` holds the per-namespace rules, ``decisions`` judges references against the
registry, ``review`` speaks the ``admission.k8s.io/v1`` AdmissionReview contract, ``server``
and ``commands`` serve it over HTTPS (``mlgate webhook``).
"""
