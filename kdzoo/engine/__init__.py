from .hooks import StudentCheckpointHook

__all__ = ['StudentCheckpointHook']
