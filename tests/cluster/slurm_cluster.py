"""A throwaway single-node SLURM cluster for the tests: Debian's packages, a private munged and a
slurm.conf under a temporary folder, slurmctld and slurmd in the foreground as children of the test
process (so exactly those are stopped at the end).

Nothing system-wide is configured: the daemons and every client (sbatch, squeue, srun inside the
jobs) find the cluster through $SLURM_CONF, munge through the socket named in slurm.conf
(`AuthInfo`), and the ports are picked free at start, so a SLURM installation already on the machine
is left alone. No accounting daemon: the workflow's profile polls job states with `squeue`
(see workflows/profiles/slurm-test/config.yaml), which slurmctld answers itself.
"""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "munge", "slurm-client"]
# what the tests run: the daemons, and the clients the executor plugin and the tests call
BINARIES = ["slurmctld", "slurmd", "munged", "munge", "sbatch", "squeue", "scancel", "sinfo", "scontrol", "srun"]
CLUSTER_NAME = "nasrepro-test"
PARTITION = "test"
# The largest mem_mb a smoke-scale job of the workflow asks for (prepare_data); a node reporting
# less is declared with this much (SlurmdParameters=config_overrides), or sbatch would refuse it.
MIN_NODE_MEMORY_MB = 8192


def binary(name: str) -> str | None:
    """The path of a program (the daemons are in /usr/sbin, which a user's PATH may lack), or None."""
    return shutil.which(name) or next((f"{d}/{name}" for d in ("/usr/sbin", "/sbin")
                                       if os.access(f"{d}/{name}", os.X_OK)), None)


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if binary(b) is None]


def install_packages() -> str | None:
    """Install Debian's SLURM packages if any of their programs is missing. Returns None when they
    are there, or the reason they cannot be (the caller skips with it)."""
    if not missing_binaries():
        return None
    if not shutil.which("apt-get"):
        return f"SLURM is not installed ({', '.join(missing_binaries())} missing) and there is no apt-get"
    if os.geteuid() == 0:
        prefix: list[str] = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        prefix = ["sudo", "-n"]
    else:
        return (f"SLURM is not installed ({', '.join(missing_binaries())} missing) and cannot be: not root "
                f"and no password-less sudo (install it with: apt-get install -y {' '.join(PACKAGES)})")
    # The packages' scripts must not start system-wide daemons (the tests start their own):
    # a policy-rc.d that refuses, for the duration of the install, where none is in place.
    policy = Path("/usr/sbin/policy-rc.d")
    added_policy = False
    if not policy.exists():
        script = "#!/bin/sh\n# nas-repro tests: no service starts while SLURM is installed\nexit 101\n"
        subprocess.run([*prefix, "tee", str(policy)], input=script, text=True, capture_output=True, check=True)
        subprocess.run([*prefix, "chmod", "755", str(policy)], check=True)
        added_policy = True
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = [*prefix, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
               "--no-install-recommends", *PACKAGES]
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        if result.returncode != 0:  # a stale package list: refresh it once
            subprocess.run([*prefix, "apt-get", "update", "-q"], capture_output=True, text=True, env=env, timeout=600)
            result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    except subprocess.TimeoutExpired:
        return f"apt-get install {' '.join(PACKAGES)} timed out"
    finally:
        if added_policy:
            subprocess.run([*prefix, "rm", "-f", str(policy)], check=False)
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        return f"apt-get install {' '.join(PACKAGES)} failed (exit {result.returncode}): {tail}"
    if missing_binaries():
        return f"after apt-get install, still missing: {', '.join(missing_binaries())}"
    return None


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def node_hardware() -> dict[str, str]:
    """What `slurmd -C` reports of this machine: NodeName, CPUs, Boards, SocketsPerBoard,
    CoresPerSocket, ThreadsPerCore, RealMemory."""
    out = subprocess.run([binary("slurmd"), "-C"], capture_output=True, text=True, timeout=60, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("NodeName="))
    return dict(field.split("=", 1) for field in line.split())


class SlurmCluster:
    """munged, slurmctld and slurmd of one node, partition `test`; `env` is what clients need."""

    def __init__(self, root: Path | None = None):
        # short: a unix socket path has at most 107 characters
        self.root = Path(root or tempfile.mkdtemp(prefix="nasrepro-slurm-"))
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.processes: dict[str, subprocess.Popen] = {}
        self.user = getpass.getuser()
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
        # bin/srun (written at start) before the real one: see write_config
        self.env = {**clean, "SLURM_CONF": str(self.conf), "PATH": f"{self.root / 'bin'}{os.pathsep}{clean['PATH']}"}
        self.node = ""

    # -- set-up ------------------------------------------------------------------------------------
    def write_config(self) -> None:
        for sub in ("munge", "state", "spool", "log", "run"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
            os.chmod(self.root / sub, 0o700)
        os.chmod(self.root, 0o755)
        # snakemake-executor-plugin-slurm-jobstep (0.6.1) drops every SLURM_* variable but the job's
        # identity before its `srun` inside the job, SLURM_CONF included: on a cluster configured
        # through /etc/slurm or DNS that is harmless, here srun would find no configuration. This
        # srun puts it back.
        (self.root / "bin").mkdir(exist_ok=True)
        srun = self.root / "bin" / "srun"
        conf, real = shlex.quote(str(self.conf)), shlex.quote(binary("srun"))
        srun.write_text(f'#!/bin/sh\nSLURM_CONF={conf} exec {real} "$@"\n')
        os.chmod(srun, 0o755)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o600)

        hw = node_hardware()
        self.node = hw["NodeName"]
        memory = int(hw["RealMemory"])
        overrides = ""
        if memory < MIN_NODE_MEMORY_MB:
            memory, overrides = MIN_NODE_MEMORY_MB, "SlurmdParameters=config_overrides\n"
        node = " ".join(f"{k}={hw[k]}" for k in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket",
                                                 "ThreadsPerCore") if k in hw)
        ctld_port, slurmd_port = free_ports(2)
        r = self.root
        self.conf.write_text(f"""\
# nas-repro test cluster (tests/cluster/slurm_cluster.py); one node, no accounting, no cgroups
ClusterName={CLUSTER_NAME}
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={self.user}
SlurmdUser={self.user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/run/slurmctld.pid
SlurmdPidFile={r}/run/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# finished jobs stay visible to `squeue --states=all` (the plugin's status command) this long;
# the plugin requires >= 3 x slurm-init-seconds-before-status-checks to trust squeue
MinJobAge=3600
# scancel: SIGTERM, then SIGKILL after this many seconds
KillWait=5
InactiveLimit=0
{overrides}NodeName={self.node} NodeAddr=127.0.0.1 {node} RealMemory={memory} State=UNKNOWN
PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")

    def _start(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.root / "log" / f"{name}.out", "w")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=self.env, start_new_session=True)
        log.close()
        self.processes[name] = proc
        return proc

    def _wait(self, what: str, ready, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode} while waiting for {what}:\n{self.logs()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}:\n{self.logs()}")
            time.sleep(0.2)

    def start(self) -> SlurmCluster:
        self.write_config()
        m = self.root / "munge"
        self._start("munged", [binary("munged"), "--foreground", "--force", f"--key-file={m}/munge.key",
                               f"--socket={self.munge_socket}", f"--pid-file={m}/munged.pid",
                               f"--log-file={m}/munged.log", f"--seed-file={m}/munged.seed", "--num-threads=2"])
        self._wait("munged", lambda: subprocess.run(
            [binary("munge"), "-n", "-S", str(self.munge_socket)], capture_output=True).returncode == 0)
        self._start("slurmctld", [binary("slurmctld"), "-D", "-c", "-f", str(self.conf)])
        self._wait("slurmctld", lambda: "UP" in self.run("scontrol", "ping", check=False).stdout)
        self._start("slurmd", [binary("slurmd"), "-D", "-f", str(self.conf)])
        self._wait(f"node {self.node} idle", lambda: self.node_state() == "idle")
        return self

    # -- use -------------------------------------------------------------------------------------
    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([binary(args[0]), *args[1:]], capture_output=True, text=True, env=self.env,
                              timeout=timeout, check=check)

    def node_state(self) -> str:
        result = self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T", check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld still knows (finished ones for MinJobAge): id, state, name (the
        plugin's run ID), comment (the plugin's rule_<rule>_wildcards_...), nodes."""
        out = self.run("squeue", "--states=all", "-h", "-o", "%i|%T|%j|%k|%N").stdout
        keys = ("id", "state", "name", "comment", "nodes")
        return [dict(zip(keys, line.split("|"))) for line in out.splitlines() if line.strip()]

    def logs(self) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*")) + [self.root / "munge" / "munged.log"]:
            if path.is_file():
                parts.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    # -- tear-down -------------------------------------------------------------------------------
    def stop(self) -> None:
        """Cancel what is left in the queue, then end the daemons this object started (SIGTERM, then
        SIGKILL), slurmd first; remove the folder."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            try:
                self.run("scancel", "--full", "-u", self.user, check=False, timeout=30)
                deadline = time.monotonic() + 30
                while any(j["state"] in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED")
                          for j in self.jobs()) and time.monotonic() < deadline:
                    time.sleep(0.5)
            except (subprocess.SubprocessError, OSError):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.processes.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)
