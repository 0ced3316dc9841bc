"""A real-text classification set built offline from the Python language reference.

CPython ships the reference's topics as plain text (`pydoc_data.topics`, what `help("if")` prints).
Its prose paragraphs, labelled by the part of the language their topic documents, make a small
four-class set of real, varied English text: nothing is downloaded, and the same Python version
gives the same rows.
"""

from __future__ import annotations

import re

# topic -> class. Topics not listed (the pdb manual "debugger", tiny ones) are left out.
CLASSES = ("statements", "expressions", "data model", "built-in types")
_TOPICS = {
    "statements": "assert assignment async augassign break class compound continue del for function global if "
                  "import nonlocal pass raise return try while with yield",
    "expressions": "atom-identifiers atom-literals attribute-references await binary bitwise booleans calls "
                   "comparisons conversions execmodel exprlists identifiers in lambda naming operator-summary "
                   "power shifting slicings subscriptions unary",
    "data model": "attribute-access bltin-code-objects bltin-ellipsis-object bltin-null-object bltin-type-objects "
                  "callable-types context-managers customization id-classes numeric-types objects sequence-types "
                  "specialattrs specialnames types",
    "built-in types": "dict exceptions floating formatstrings imaginary integers lists numbers string-methods "
                      "strings truth typesfunctions typesmapping typesmethods typesmodules typesseq "
                      "typesseq-mutable",
}
TOPIC_CLASS = {topic: CLASSES.index(name) for name, topics in _TOPICS.items() for topic in topics.split()}


def python_docs_rows(min_words: int = 12) -> tuple[list[str], list[int]]:
    """(texts, labels): every prose paragraph of `min_words` words or more of the topics in `TOPIC_CLASS`
    (grammar rules and code, under 85% letters and spaces, are skipped; repeated paragraphs kept once)."""
    from pydoc_data.topics import topics

    texts, labels, seen = [], [], set()
    for topic in sorted(topics):
        if topic not in TOPIC_CLASS:
            continue
        for para in re.split(r"\n\s*\n", topics[topic]):
            text = " ".join(para.split())
            prose = sum(ch.isalpha() or ch.isspace() for ch in text) / max(len(text), 1)
            if len(text.split()) >= min_words and prose > 0.85 and text not in seen:
                seen.add(text)
                texts.append(text)
                labels.append(TOPIC_CLASS[topic])
    return texts, labels


def load_python_docs(test_size: float = 0.2, seed: int = 0):
    """The paragraphs as a `datasets.DatasetDict` ("train", "test"), columns "text" and "label"
    (ClassLabel: statements, expressions, data model, built-in types), split stratified by label.

    Example:
        ```python
        >>> from hf_coreset.data.python_docs import load_python_docs
        >>> dd = load_python_docs()
        >>> dd["train"].features["label"].names
        ['statements', 'expressions', 'data model', 'built-in types']
        ```
    """
    import datasets

    texts, labels = python_docs_rows()
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(CLASSES))})
    ds = datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features)
    return ds.train_test_split(test_size=test_size, seed=seed, stratify_by_column="label")
