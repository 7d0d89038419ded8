"""The lift wing: masks and cameras into lifting views, the exact accumulation, its sidecar, the solve for any
gamma, levels, gamma by cross-validation and the association of per-view mask ids."""
