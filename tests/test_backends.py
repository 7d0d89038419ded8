"""Every backend class is a :class:`Backend` (core/raster/backends.py): each member of the protocol is on the class,
and each method accepts every call the protocol allows (same parameters in the same order, the same defaults, and
anything more optional). Read from the classes themselves: no GPU and no cluster needed."""

import inspect

import numpy as np
import pytest

from blender_gsseg.core.cluster import ClusterBackend
from blender_gsseg.core.raster.backends import Backend, CpuBackend
from blender_gsseg.core.raster.cuda_backend import CudaBackend
from scenes import front_camera, random_scene

BACKEND_CLASSES = (CpuBackend, CudaBackend, ClusterBackend)


def protocol_members(protocol):
    """The protocol's attributes (annotated) and methods (public functions)."""
    return set(protocol.__annotations__) | {name for name, value in vars(protocol).items()
                                             if inspect.isfunction(value) and not name.startswith("_")}


def mismatches(cls, protocol=Backend):
    """Why ``cls`` does not satisfy ``protocol``: one line per problem, none when it does."""
    problems = []
    for name in sorted(protocol_members(protocol)):
        wanted = getattr(protocol, name, None)
        if not hasattr(cls, name):
            problems.append(f"{name}: missing")
        elif not inspect.isfunction(wanted):  # an attribute: `name: str`
            if not isinstance(getattr(cls, name), str):
                problems.append(f"{name}: not a str on the class")
        elif not inspect.isfunction(getattr(cls, name)):
            problems.append(f"{name}: not a method")
        else:
            problems += [f"{name}: {why}" for why in _signature_mismatches(inspect.signature(wanted),
                                                                            inspect.signature(getattr(cls, name)))]
    return problems


def _signature_mismatches(wanted, have):
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    wanted_params = list(wanted.parameters.values())[1:]  # without self
    have_params = list(have.parameters.values())[1:]
    problems = []
    for index, param in enumerate(wanted_params):
        if index >= len(have_params) or have_params[index].name != param.name:
            problems.append(f"parameter {index + 1} is not {param.name!r}")
            continue
        mine = have_params[index]
        if mine.kind not in positional:
            problems.append(f"{param.name!r} cannot be passed by position")
        elif param.default is not inspect.Parameter.empty and mine.default != param.default:
            problems.append(f"{param.name!r} defaults to {mine.default!r}, not {param.default!r}")
    for extra in have_params[len(wanted_params):]:
        if extra.default is inspect.Parameter.empty and extra.kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                                          inspect.Parameter.VAR_KEYWORD):
            problems.append(f"{extra.name!r} is required but the protocol does not pass it")
    return problems


def test_the_protocol_names_the_backends_interface():
    assert protocol_members(Backend) == {"name", "accumulate", "render_colour", "render_alpha_depth",
                                         "render_label_weights"}


@pytest.mark.parametrize("cls", BACKEND_CLASSES, ids=lambda cls: cls.__name__)
def test_every_backend_satisfies_the_protocol(cls):
    assert mismatches(cls) == []


def test_the_check_finds_a_backend_that_does_not_fit():
    class Partial:  # no name, no renders of alpha and label weights; renamed, reordered and extra parameters
        def accumulate(self, gaussians, views, labels, cancel=None, progress=None, dtype=np.float64):
            pass

        def render_colour(self, gaussians, camera, background=(0.0, 0.0, 0.0), colours=None, scale=None, *, sh):
            pass

        render_alpha_depth = "not a method"

    assert mismatches(Partial) == [
        "accumulate: parameter 3 is not 'n_labels'",
        "accumulate: parameter 4 is not 'progress'",
        "accumulate: parameter 5 is not 'cancel'",
        "accumulate: 'dtype' defaults to <class 'numpy.float64'>, not <class 'numpy.float32'>",
        "name: missing",
        "render_alpha_depth: not a method",
        "render_colour: 'sh' is required but the protocol does not pass it",
        "render_label_weights: missing",
    ]


def test_the_cluster_backend_renders_on_its_local_backend():
    scene, camera = random_scene(5, n=60), front_camera(40, 30)
    cluster, cpu = ClusterBackend(client=None, inner="cpu"), CpuBackend()
    include = np.arange(len(scene)) % 2 == 0
    groups = np.arange(len(scene)) % 3 - 1
    renders = [("render_colour", (scene, camera, (0.2, 0.3, 0.4))), ("render_alpha_depth", (scene, camera, include)),
               ("render_label_weights", (scene, camera, groups, 2))]
    for method, args in renders:
        got, want = getattr(cluster, method)(*args), getattr(cpu, method)(*args)
        for got_array, want_array in zip(got, want, strict=True):
            np.testing.assert_array_equal(got_array, want_array, err_msg=method)
