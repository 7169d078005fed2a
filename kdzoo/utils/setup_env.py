"""Import kdzoo's modules so that every registry is populated, and set the default scope."""
import datetime
import warnings

from mmengine.registry import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register kdzoo's components and make ``kdzoo`` the default scope.

    Configs then name components by string; ``mmdet.X`` / ``mmseg.X`` reach those packages'
    registries.
    """
    import kdzoo.datasets  # noqa: F401
    import kdzoo.engine  # noqa: F401
    import kdzoo.evaluation  # noqa: F401
    import kdzoo.kd  # noqa: F401
    import kdzoo.models  # noqa: F401
    import kdzoo.teaching  # noqa: F401
    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None:
        DefaultScope.get_instance('kdzoo', scope_name='kdzoo')
    elif current.scope_name != 'kdzoo':
        warnings.warn(f'the current default scope is {current.scope_name!r}, not "kdzoo"; '
                      f'kdzoo creates a new one')
        stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S%f')
        DefaultScope.get_instance(f'kdzoo-{stamp}', scope_name='kdzoo')
