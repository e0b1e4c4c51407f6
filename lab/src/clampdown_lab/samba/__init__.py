"""The lab's Samba AD DC: the project's scripts (samba-up.sh, samba-down.sh, setup_delegation.sh)."""

from clampdown_lab.samba.component import SambaLab, SambaLabComponent, start_samba

__all__ = ["SambaLab", "SambaLabComponent", "start_samba"]
