"""`make bench`: the pipeline measured against the raw speed of the same tools, in one run.

Every figure is printed next to an anchor measured in the same run on the same
machine (a bare pika consumer, a bare WSGI app under the same gunicorn, ...), so
the ratio stays meaningful on a shared, noisy machine where absolute timings do
not. `python -m bench --help` lists the measurements.
"""
