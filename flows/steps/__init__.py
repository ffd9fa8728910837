"""The pipeline's steps: plain functions of the configuration and plain values.

They know neither Prefect nor MLflow, so a notebook or a test can call them directly; the
flows (:mod:`flows.retrain`, :mod:`flows.score`) wrap them as Prefect tasks and wire them.
"""
