"""The soak takes ten minutes: it runs only when asked for by name (`make soak`: `-m soak`).

Done here rather than with a default `-m "not soak"`, which any other `-m` on the command line
(say `-m "not integration"`) would silently replace, starting a ten-minute soak.
"""



def pytest_collection_modifyitems(config, items):
    if "soak" in (config.getoption("markexpr") or ""):
        return
    here = config.rootpath / "tests" / "soak"
    chosen = [item for item in items if here not in item.path.parents]
    if len(chosen) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if here in item.path.parents])
        items[:] = chosen
