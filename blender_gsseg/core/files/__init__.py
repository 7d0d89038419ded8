"""Files in and out: splat files (:mod:`.splats`, over :mod:`.ply` and :mod:`.compressed`), camera files by
format (:mod:`.camera_files`), masks (:mod:`.masks`) and the one mechanism every output goes through
(:mod:`.commit`). The rest of the core and the layers above import this package; it imports only the core's
data types (Gaussians, Camera) and errors."""
