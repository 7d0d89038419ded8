"""Geometry Nodes modifiers' inputs by name (the splat and the point display set theirs through these), the
supported way in each Blender version."""


def input_identifier(group, name):
    """The identifier of the node group input called ``name`` (None when there is none)."""
    for item in group.interface.items_tree:
        if getattr(item, "in_out", None) == "INPUT" and item.name == name:
            return item.identifier
    return None


def _modifier_input(modifier, name):
    """(inputs, identifier) of the modifier input called ``name`` in its node group's interface, or None.
    ``inputs`` is ``modifier.properties.inputs`` where Blender has it (5.3, which no longer accepts ID-property
    subscripting of the modifier), else None (4.2-5.0: ``modifier[identifier]``)."""
    if modifier.node_group is None:
        return None
    identifier = input_identifier(modifier.node_group, name)
    if identifier is None:
        return None
    return getattr(getattr(modifier, "properties", None), "inputs", None), identifier


def set_modifier_input(modifier, name, value):
    """Set the Geometry Nodes modifier input called ``name`` to ``value``, the supported way in each Blender
    version. Returns False when the modifier has no node group or no such input."""
    found = _modifier_input(modifier, name)
    if found is None:
        return False
    inputs, identifier = found
    if inputs is not None:
        getattr(inputs, identifier).value = value
    else:
        modifier[identifier] = value
    return True


def get_modifier_input(modifier, name):
    """The value of the Geometry Nodes modifier input called ``name`` (None when there is no such input)."""
    found = _modifier_input(modifier, name)
    if found is None:
        return None
    inputs, identifier = found
    return getattr(inputs, identifier).value if inputs is not None else modifier[identifier]
