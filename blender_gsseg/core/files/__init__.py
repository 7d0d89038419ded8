"""Files in and out: splat files (:mod:`.splats`, over one module per format: :mod:`.ply`, :mod:`.compressed_ply`,
:mod:`.dot_splat`, :mod:`.spz`, :mod:`.gltf`, :mod:`.sog`, :mod:`.ksplat`, with the lossy formats' shared steps in
:mod:`.quantize`), camera files by format (:mod:`.camera_files`), masks (:mod:`.masks`) and the one mechanism every
output goes through (:mod:`.commit`). The rest of the core and the layers above import this package; it imports
only the core's data types (Gaussians, Camera) and errors."""
