"""The scene wing: what is done to the Gaussians as a whole (baking an object transform, which way is up), view
cameras for a splat without its own, and labels from proxy meshes alone."""
