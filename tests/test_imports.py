"""No import circle anywhere in arc_submit: the wings' layers and run/'s are import-linter contracts
(pyproject.toml, `make test`); this checks every pair of modules, inside a wing too."""

from __future__ import annotations


def test_no_module_of_the_package_imports_itself_back():
    import grimp

    graph = grimp.build_graph("arc_submit")
    circles = sorted({tuple(sorted((module, imported))) for module in graph.modules
                      for imported in graph.find_modules_directly_imported_by(module)
                      if imported != module and graph.chain_exists(importer=imported, imported=module)})
    assert circles == []
