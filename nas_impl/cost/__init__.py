"""What a replication costs, before it runs: the device-hours of every job of a workflow run.

For each training, evaluation and search job the workflow would run at one scale (`RunPlan`),
the *work* is counted from the manifests and recipes (`jobs`): the images (tokens for a language
model) that pass through a network, forward and backward, and evaluation passes at a third of that
(forward only). A search's work is what its method describes (`MethodInfo.search_work`, in
nas_impl/methods/<method>/work.py, counted in the units of nas_impl.methods.work_units): what its
search passes through the network, at a cost per image (plain training steps per image) that the
row's `basis` states, with where the number comes from. A method that describes none gives rows of
unknown work that say so.

A *rate* turns work into seconds (`rates`): the images (tokens) per second of a plain training
step of that network, at the dataset's input size, on the named device. Rates come from, in order:

1. **measured**: earlier runs under `results/<scale>/` on a device of the same name
   (`metrics.json` `run.device_name`): a training's `train_log.csv` (`images_per_s` /
   `tokens_per_s`, median over epochs) for the same network and input size; for a search stage,
   its benchmark `.tsv` (or the sum of its log's `epoch_s`, when larger: a resumed job's benchmark
   covers its last attempt only), divided into the work that run did;
2. **calibrated**: `nasrepro cost --calibrate` times a few plain SGD steps of each network on the
   current device (`calibrate`, the one module here that imports torch; not imported by this
   package) and caches the rates in `results/cost/calibration.json`, keyed by device name;
3. otherwise **unknown**: the row says so and adds nothing to the totals.

`projection` prices the jobs and sums them (per paper, per rule, on N devices, the critical path)
and writes cost.csv; `text` prints the table. Nothing here imports torch.
"""

from nas_impl.cost.jobs import Claim, Job, plan_jobs, read_spec, search_claim, search_work
from nas_impl.cost.projection import (COLUMNS, Priced, Projection, csv_rows, networks_to_calibrate, price, project,
                                      summary, write_csv)
from nas_impl.cost.rates import CALIBRATION_FILE, CALIBRATION_FORMAT, Rate, Rates, load_calibration
from nas_impl.cost.text import render
from nas_impl.methods.work_units import DATA_SIZES, DataSize, Network, Part, StageWork

__all__ = ["CALIBRATION_FILE", "CALIBRATION_FORMAT", "COLUMNS", "DATA_SIZES", "Claim", "DataSize", "Job", "Network",
           "Part", "Priced", "Projection", "Rate", "Rates", "StageWork", "csv_rows", "load_calibration",
           "networks_to_calibrate", "plan_jobs", "price", "project", "read_spec", "render", "search_claim",
           "search_work", "summary", "write_csv"]
