"""Station files and peer configurations for bench.py: the same registers for Quantrac and its peers."""

# One cycle of mixed channel types: (type, byte order, registers, collectd RegisterType, scale).
# collectd reads the same registers; it has no BADC/DCBA orders, so those are read as plain Float there.
PATTERN = [
    ("float32", "ABCD", 2, "Float", 1), ("int16", "ABCD", 1, "Int16", 0.1), ("float32", "CDAB", 2, "FloatLE", 1),
    ("uint16", "ABCD", 1, "Uint16", 0.01), ("uint32", "ABCD", 2, "Uint32", 0.001), ("float32", "BADC", 2, "Float", 1),
    ("int16", "BADC", 1, "Int16", 1), ("int32", "CDAB", 2, "Int32LE", 0.1), ("float32", "DCBA", 2, "Float", 1),
    ("uint16", "ABCD", 1, "Uint16", 0.1),
]


def layout(channels=None, registers=None):
    """Channels of the PATTERN in turn from address 0: `channels` of them, or as many as fit in `registers`."""
    out, address, i = [], 0, 0
    while True:
        typ, order, size, ctype, scale = PATTERN[i % len(PATTERN)]
        if channels is not None and len(out) == channels:
            return out
        if registers is not None and address + size > registers:
            return out
        out.append({"code": f"CH{len(out) + 1:02d}", "type": typ, "order": order, "address": address, "size": size,
                    "ctype": ctype, "scale": scale})
        address += size
        i += 1


def station(data_dir, port, chans, *, record="5m", poll="10s", commit_window=None, targets="", extra_station="",
            timeout="1s", bus_host="127.0.0.1"):
    lines = ["[station]", 'prefix = "HN_BENCH_NUO001"', 'kind = "wastewater"', f'data_dir = "{data_dir}"',
             f'record_interval = "{record}"', f'poll_interval = "{poll}"']
    if commit_window is not None:
        lines.append(f'commit_window = "{commit_window}"')
    if extra_station:
        lines.append(extra_station)
    lines += ["", "[[bus]]", 'name = "lan"', 'transport = "modbus-tcp"', f'host = "{bus_host}"', f"port = {port}",
              f'timeout = "{timeout}"', ""]
    for c in chans:
        lines += ["[[channel]]", f'code = "{c["code"]}"', 'unit = "mg/L"', 'bus = "lan"', f'address = {c["address"]}',
                  f'type = "{c["type"]}"', f'byte_order = "{c["order"]}"', f'scale = {c["scale"]}', ""]
    return "\n".join(lines) + targets


def acquisition_station(data_dir, port):
    """The 64 holding registers mbpoll reads, as 40 channels of mixed types (one read request)."""
    return station(data_dir, port, layout(registers=64), poll="1s", commit_window="10s", timeout="500ms")


def footprint_station(data_dir, port, commit_window):
    """64 channels of mixed types at 1 Hz, no target (files stay in data_dir), like collectd's CSV."""
    return station(data_dir, port, layout(channels=64), poll="1s", commit_window=commit_window, timeout="500ms")


def backlog_station(data_dir, ftp_port, user, password_file, publish="rename"):
    """A 10-channel wastewater station whose one target is the FTP receiver's `in/` folder."""
    target = (f'\n[[target]]\nname = "dept"\nurl = "ftp://127.0.0.1:{ftp_port}/in"\nuser = "{user}"\n'
              f'password_file = "{password_file}"\nretry_max = "2s"\npublish = "{publish}"\n')
    return station(data_dir, 1, layout(channels=10), poll="10s", timeout="500ms", targets=target)


def collectd_conf(d, port):
    """collectd polling the footprint station's 64 values at 1 Hz into CSV files (csv plugin)."""
    chans = layout(channels=64)
    lines = ["Interval 1", f'BaseDir "{d}"', f'PIDFile "{d}/collectd.pid"', 'PluginDir "/usr/lib/collectd"',
             'TypesDB "/usr/share/collectd/types.db"', "FQDNLookup false", 'Hostname "bench"', "AutoLoadPlugin false",
             "LoadPlugin modbus", "LoadPlugin csv", "<Plugin csv>", f'  DataDir "{d}/csv"', "  StoreRates false", "</Plugin>",
             "<Plugin modbus>"]
    for c in chans:
        lines += [f'  <Data "{c["code"]}">', f'    RegisterBase {c["address"]}', f'    RegisterType {c["ctype"]}',
                  '    Type "gauge"', f'    Instance "{c["code"]}"', "  </Data>"]
    lines += ['  <Host "bench">', '    Address "127.0.0.1"', f'    Port "{port}"', "    Interval 1", "    <Slave 1>",
              '      Instance "s1"']
    lines += [f'      Collect "{c["code"]}"' for c in chans]
    lines += ["    </Slave>", "  </Host>", "</Plugin>", ""]
    return "\n".join(lines)
