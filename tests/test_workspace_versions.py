"""Every stage's version, changelog and license agree.

Each workspace member (shared and packages/<stage>) carries its own semantic version in its
pyproject.toml and says what each version holds in its CHANGELOG.md (Keep a Changelog form).
tools/release_stage.py keeps the two in step; these tests catch a hand edit of one without the
other, a changelog out of order, and a member without the project's MIT license.
"""

import re
import tomllib
from datetime import date
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = [ROOT / "shared"] + sorted(p.parent for p in ROOT.glob("packages/*/pyproject.toml"))
IDS = [member.name for member in MEMBERS]

HEADING = re.compile(r"^## (.*)$", re.MULTILINE)
RELEASE = re.compile(r"\[(\d+)\.(\d+)\.(\d+)\] - (\d{4}-\d{2}-\d{2})")


def project(member: Path) -> dict:
    return tomllib.loads((member / "pyproject.toml").read_text("utf-8"))["project"]


def releases(member: Path) -> list[tuple[tuple[int, int, int], date]]:
    """The changelog's released versions and dates, top first (Unreleased left out)."""
    text = (member / "CHANGELOG.md").read_text("utf-8")
    found = []
    for heading in HEADING.findall(text):
        release = RELEASE.fullmatch(heading.strip())
        if release:
            major, minor, patch, day = release.groups()
            found.append(((int(major), int(minor), int(patch)), date.fromisoformat(day)))
    return found


def test_every_stage_is_a_member():
    """The list below is not empty by accident: shared and ten stages at the time of writing."""
    assert IDS[0] == "shared" and len(MEMBERS) >= 11


@pytest.mark.parametrize("member", MEMBERS, ids=IDS)
def test_version_is_the_top_released_changelog_entry(member):
    version = project(member)["version"]
    listed = releases(member)
    assert listed, f"{member.name}/CHANGELOG.md lists no release `## [X.Y.Z] - YYYY-MM-DD`"
    top = ".".join(map(str, listed[0][0]))
    assert version == top, (
        f"{member.name}: pyproject.toml says {version}, CHANGELOG.md's top release is {top} "
        "(release with tools/release_stage.py, which changes both)"
    )


@pytest.mark.parametrize("member", MEMBERS, ids=IDS)
def test_changelog_form(member):
    """Keep a Changelog: the links, Unreleased on top, then only dated releases, newest first."""
    text = (member / "CHANGELOG.md").read_text("utf-8")
    assert "https://keepachangelog.com/" in text and "https://semver.org/" in text
    headings = [heading.strip() for heading in HEADING.findall(text)]
    assert headings[0] == "[Unreleased]", f"{member.name}: the first section is {headings[0]!r}"
    assert headings.count("[Unreleased]") == 1
    for heading in headings[1:]:
        assert RELEASE.fullmatch(heading), f"{member.name}: a heading that is no release: {heading}"
    listed = releases(member)
    versions = [version for version, _ in listed]
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(versions), (
        f"{member.name}: releases not in descending semver order: {versions}"
    )
    days = [day for _, day in listed]
    assert days == sorted(days, reverse=True), f"{member.name}: release dates out of order"


@pytest.mark.parametrize("member", MEMBERS, ids=IDS)
def test_license_is_mit(member):
    assert project(member).get("license") == "MIT", f'{member.name}: license = "MIT" missing'


def test_root_license_is_mit():
    text = (ROOT / "LICENSE").read_text("utf-8")
    assert text.startswith("MIT License")
    assert "Permission is hereby granted, free of charge" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text
