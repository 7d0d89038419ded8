"""The format and maths core of gsseg. Never imports ``bpy``."""
