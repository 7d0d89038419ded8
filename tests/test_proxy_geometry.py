"""Points inside a proxy mesh (core.scene.proxy_geometry) against shapes whose inside is known in closed form."""

import numpy as np

from blender_gsseg.core.scene.proxy_geometry import points_inside


def box_triangles(low, high):
    low, high = np.asarray(low, float), np.asarray(high, float)
    corners = np.array([[low[0] if i & 1 == 0 else high[0], low[1] if i & 2 == 0 else high[1],
                         low[2] if i & 4 == 0 else high[2]] for i in range(8)])
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    return np.array([corners[[q[0], q[1], q[2]]] for q in quads] + [corners[[q[0], q[2], q[3]]] for q in quads])


def icosphere(subdivisions=3):
    t = (1 + 5 ** 0.5) / 2
    vertices = [np.array(v, float) for v in [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t),
                                            (0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
             (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
             (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    triangles = [np.array([vertices[i] for i in f]) for f in faces]
    for _ in range(subdivisions):
        finer = []
        for a, b, c in triangles:
            ab, bc, ca = (a + b) / 2, (b + c) / 2, (c + a) / 2
            finer += [np.array(t) for t in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))]
        triangles = finer
    triangles = np.array(triangles)
    return triangles / np.linalg.norm(triangles, axis=2, keepdims=True)


def test_box():
    rng = np.random.default_rng(0)
    points = rng.uniform(-2, 2, (20000, 3))
    low, high = np.array([-1.0, -0.5, -0.25]), np.array([0.7, 1.2, 0.9])
    truth = np.all((points > low) & (points < high), axis=1)
    assert (points_inside(points, box_triangles(low, high)) == truth).all()


def test_points_on_the_shared_edges_of_the_triangles_count_once():
    # rays through the diagonal of every face: the two triangles of a face share it
    side = np.linspace(-0.9, 0.9, 7)
    y, z = np.meshgrid(side, side)
    points = np.stack([np.full(y.size, -3.0), y.ravel(), y.ravel()], axis=1)  # on the yz diagonal
    inside = points_inside(points + [2.5, 0, 0], box_triangles([-1, -1, -1], [1, 1, 1]))
    assert inside.all()
    assert not points_inside(points, box_triangles([-1, -1, -1], [1, 1, 1])).any()


def test_sphere_and_a_hollow_shell():
    rng = np.random.default_rng(1)
    points = rng.uniform(-1.5, 1.5, (30000, 3))
    radius = np.linalg.norm(points, axis=1)
    sphere = icosphere()  # inscribed radius about 0.995
    inside = points_inside(points, sphere)
    clear = (radius < 0.99) | (radius > 1.0)
    assert (inside[clear] == (radius[clear] < 0.99)).all()
    shell = np.concatenate([sphere, 0.5 * sphere[:, ::-1]])  # an inner sphere, facing inward: a hollow ball
    inside = points_inside(points, shell)
    clear &= (radius < 0.49) | (radius > 0.5)
    assert (inside[clear] == ((radius[clear] < 0.99) & (radius[clear] > 0.5))).all()
