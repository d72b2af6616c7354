"""REDCap data dictionaries: a study's instruments out as one CSV, and one CSV in as versions.

The file is REDCap's own: its 18 columns in its order, one row per field, rows of a form kept
together, and quoted the way REDCap writes it (PHP's ``fputcsv``: a cell is quoted when it holds a
space, comma, quote, tab, line break or backslash). Reading accepts any CSV quoting, a UTF-8 BOM
and ``\\r\\n`` or ``\\n`` line ends.

How REDCap field types map to item kinds (``options`` keys are this module's):

==========================  ==============================================================
REDCap                      item
==========================  ==============================================================
text                        text; ``options["validation"]`` keeps a validation (email, ...)
text + integer              integer (the validation is implied and not stored)
text + number, number_Ndp   decimal (``options["validation"]`` unless plain ``number``)
text + date_ymd/mdy/dmy     date (``options["validation"]`` unless ``date_ymd``)
text + datetime_*, time...  text, with ``options["validation"]``
notes                       notes
radio / dropdown            single; ``options["redcap_type"] = "dropdown"`` for a dropdown
checkbox                    multiple
yesno / truefalse           yesno; ``options["redcap_type"] = "truefalse"`` for true/false
slider                      slider; labels in ``options["left"|"middle"|"right"]`` by language,
                            "number" shown -> ``options["show_number"] = True``
calc                        calc (the formula is in the choices column)
descriptive                 descriptive
file, signature, sql        refused: the app cannot store files or run SQL
==========================  ==============================================================

Columns with no model field are kept in ``options`` so that a round trip is exact:
``alignment`` (Custom Alignment), ``question_number``, ``matrix_ranking`` and ``redcap_choices``
(a choices cell on a field type that takes none). Two action tags in the Field Annotation are
read into ``options`` too: ``@ALERT="expression"`` (``options["alert"]``, surveys/safety.py) and
``@DIARY="group=1 format=inperson days=30"`` (``options["diary"]``, the meeting diary's prefill).

A dictionary holds texts in one language (the study's default unless one is given). Importing
into an existing instrument keeps the other languages of every text that reads as before, and
flags the items whose text changed while their other languages were kept (``ImportedForm``).
"""

from surveys.dictionary.common import COLUMNS, DictionaryError, ImportedForm
from surveys.dictionary.reader import dictionary_import, dictionary_import_forms
from surveys.dictionary.writer import dictionary_export

__all__ = [
    "COLUMNS",
    "DictionaryError",
    "ImportedForm",
    "dictionary_export",
    "dictionary_import",
    "dictionary_import_forms",
]
