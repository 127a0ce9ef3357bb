"""The README and docs/ pages: the config reference is the YAML files' own, links lead somewhere, and
the README stays a newcomer's page."""
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _reference_module():
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "docs" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_reference_is_generated_from_the_yaml_files():
    ref = _reference_module()
    page = ref.PAGE.read_text()
    assert page == ref.page_with_tables(page), "docs/config.md is stale: run python docs/config_reference.py"


def test_the_families_table_of_variants_md_is_generated_from_the_declarations():
    ref = _reference_module()
    page = ref.VARIANTS.read_text()
    assert page == ref.variants_with_table(page), "docs/variants.md is stale: run python docs/config_reference.py"


def test_config_reference_lists_every_key_of_the_composed_default(compose_cfg):
    """Each leaf of the default config (and of every group's files, by the generator's own reading)
    appears in the reference with its default."""
    from omegaconf import OmegaConf
    from resexp.track.logger import flatten
    page = (ROOT / "docs" / "config.md").read_text()
    flat = flatten(OmegaConf.to_container(compose_cfg(tiny=False), resolve=False))
    missing = [k for k in flat if not k.startswith("hydra") and f"`{k}`" not in page]
    assert missing == []


def test_links_between_pages_and_pictures_lead_somewhere():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.name}: {target}")
    assert broken == []


def test_readme_is_a_newcomers_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for note in ("issue-", "the GPU-speed issue", "sessions that built", "not re-measured here"):
        assert note not in text


def test_reliability_names_tests_that_exist_and_no_history():
    """Each promise of docs/reliability.md names the test that holds it: every test named is a real one,
    and the page describes the product, not how it came to be."""
    page = (ROOT / "docs" / "reliability.md").read_text()
    defined = set(re.findall(r"def (test_\w+)", "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))))
    named = set(re.findall(r"(test_\w+)`", page)) | set(re.findall(r"::(test_\w+)", page))
    assert named and named <= defined, named - defined
    assert not re.search(r"\bissue\b|\bbefore .* fix", page)
