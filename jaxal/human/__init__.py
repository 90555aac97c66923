"""A person as the oracle. Each round's question (`Round.ask_query`) goes out as pictures and CSV
files in `<workdir>/round_NNN/`; the answers come back from those files (`--oracle=human`, for a
person with a spreadsheet or a team with a labeling tool) or from a terminal session
(`--oracle=terminal`), and go into the state through `annotation.tell_query`, the same path as the
simulated oracle's answers.

A round's files:

  round_NNN/query.png          the K asked images, in the order of labels.csv, each tagged with
                               its dataset index (the `selected` numbering of results.json)
  round_NNN/images/<index>.png one enlarged PNG per asked image (for a labeling tool or a viewer)
  round_NNN/labels.csv         index,label,image: the label column is blank until answered with a
                               class name or number, `skip` or `unsure`
  round_NNN/clusters/<c>.png   cluster strategies: a montage of up to 64 members of cluster c,
                               tagged, with the class the model proposes; <c>.txt lists all members
  round_NNN/clusters.csv       cluster,size,proposed,answer,montage: answer `accept`, another class,
                               or `decline`

Answers: a class labels the image; `skip` leaves it unlabeled, back in the pool (a later round may
ask it again); `unsure` leaves it unlabeled and takes it out of the pool, so it is not asked again,
and lists it in `<workdir>/unsure.csv` for the person to revisit. Interactions: one per image
labeled, one per cluster reviewed (declined ones too).

State between invocations: the orbax checkpoint of the round's input (`jaxal.checkpointing`,
`<workdir>/checkpoints/<strategy>/<round>/`) and the pending question (`jaxal.human.pending`). The
terminal writes every answer into labels.csv / clusters.csv as it is given, so quitting at any point
(`q`, end of input, a closed window) loses nothing, and the two modes can take over from each other.

Modules: `answers` (the CSV format), `pictures`, `terminal`, `pending`, `session` (`run_human`).
The package sits below the driver: it uses the round value and never imports `jaxal.driver`.
"""
from jaxal.human.answers import ClassNames, Item, LabelFileError, read_answers, round_dir, \
    write_answers
from jaxal.human.pending import remove_rounds
from jaxal.human.pictures import contact_sheet, display_image
from jaxal.human.person import PersonRun
from jaxal.human.session import HUMAN_ORACLES, run_human
from jaxal.human.terminal import terminal_session

PERSON_ORACLES = HUMAN_ORACLES + ("web",)   # web: the labeling page (jaxal.human.web)
ORACLES = ("simulated",) + PERSON_ORACLES

__all__ = ["ClassNames", "Item", "LabelFileError", "read_answers", "round_dir", "write_answers",
           "remove_rounds", "contact_sheet", "display_image", "HUMAN_ORACLES", "run_human",
           "terminal_session", "ORACLES", "PERSON_ORACLES", "PersonRun"]
