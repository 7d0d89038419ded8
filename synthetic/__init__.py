"""Synthetic scenes and SAM-like mask noise for tests, benchmarks and docs; not shipped.

:mod:`synthetic.scene` builds spheres on a ground plane with exact ray-cast label maps; :mod:`synthetic.mask_noise`
makes exact label maps look like SAM / video-tracker output. Import with the repository root on ``sys.path``.
"""
