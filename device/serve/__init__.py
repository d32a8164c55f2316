"""``python -m device serve``: the runner plus a small read-only web server (a live view).

``hub.py`` holds the newest frame and encodes JPEGs, ``server.py`` speaks HTTP, ``web/`` is the
page, and :func:`device.serve.app.serve` wires them to the runner's publish hook.
"""
