"""Opt-in refinements of the exact labels (missing objects, seams, hidden Gaussians, the segmentation opacity)."""
