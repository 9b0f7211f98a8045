"""Sentence tasks: the messages of a user interface and their human translations, read
from the gettext catalogs (.mo files) that a package ships.

JupyterLab's language packs hold the translations its community made for the
interface (menus, dialogs, error messages). Plural entries and messages without a
letter ("%s", "{0}") are left out; a message translated differently in two catalogs
gives two alternative references.
"""

import importlib.resources
import re
import struct

from benchmarks.tasks.common import Task, clean, group_pairs, split_by_key

MO_MAGIC = 0x950412DE


def read_mo(data):
    """[(msgid, msgstr)] of a compiled gettext catalog, in the layout the GNU gettext
    manual documents: a header of five uint32 (magic, revision, count, offset of the
    original strings' table, offset of the translations' table), each table a list of
    (length, offset) pairs. The byte order follows the magic number."""
    for order in ("<", ">"):
        if struct.unpack_from(order + "I", data)[0] == MO_MAGIC:
            break
    else:
        raise ValueError("not a gettext .mo catalog (bad magic number)")
    _, _, count, originals, translations = struct.unpack_from(order + "5I", data)

    def string(table, index):
        length, offset = struct.unpack_from(order + "2I", data, table + 8 * index)
        return data[offset:offset + length].decode("utf-8")

    return [(string(originals, i), string(translations, i)) for i in range(count)]


def catalog_pairs(package):
    """(English message, translation) from every .mo catalog under `package`."""
    pairs = []
    catalogs = [importlib.resources.files(package)]
    while catalogs:
        entry = catalogs.pop()
        if entry.is_dir():
            catalogs.extend(sorted(entry.iterdir(), key=lambda e: e.name, reverse=True))
        elif entry.name.endswith(".mo"):
            for msgid, msgstr in read_mo(entry.read_bytes()):
                # The header has an empty msgid; a plural holds its forms joined by NUL.
                if not msgid or "\x00" in msgid or "\x00" in msgstr:
                    continue
                msgid = msgid.split("\x04")[-1]  # drop a message context
                source, target = clean(msgid), clean(msgstr)
                if target and re.search(r"[^\W\d_]", source):
                    pairs.append((source, target))
    return pairs


def build_messages(package):
    def build(train_size, test_size, seed):
        return split_by_key(group_pairs(catalog_pairs(package)), train_size, test_size, seed)

    return build


def copy_baseline(train, test):
    return {"copy the source": lambda source: source}


def jupyterlab_task(name, language, code):
    package = f"jupyterlab_language_pack_{code}"
    return Task(
        name=name,
        shape=f"English UI message -> {language}",
        package=f"jupyterlab-language-pack-{code.replace('_', '-')}",
        module=package,
        licence="BSD-3-Clause (JupyterLab language packs, Project Jupyter contributors)",
        kind="sentence",
        sizes={"small": (300, 50), "full": (None, 300)},
        build=build_messages(package),
        baselines=copy_baseline,
    )


UI_FR = jupyterlab_task("ui_fr", "French", "fr_FR")
UI_ZH = jupyterlab_task("ui_zh", "Chinese (simplified)", "zh_CN")
