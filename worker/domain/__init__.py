"""The domain: refund and batch states, the money-safety policy, intake rules, errors.

Pure: nothing here imports an adapter, a driver or a service.
"""
