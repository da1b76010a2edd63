package simulator

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// seedTime is the mtime given to seeded files, so archives of a freshly
// seeded unit are reproducible.
var seedTime = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

// seedUnit fills an empty unit directory with files shaped like a real
// ~/.pioreactor. A directory that already has content is left alone.
func seedUnit(ctx context.Context, u *Unit, opts Options, addrs map[string]string) error {
	ents, err := os.ReadDir(u.dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", u.dir, err)
	}
	if len(ents) > 0 {
		return nil
	}
	files := map[string]string{
		"config.ini":      configINI(opts, addrs),
		"unit_config.ini": unitConfigINI(u.name),
		".image_metadata": imageMetadata(u.isLeader),
		"storage/calibrations/od90/od90-cal-2026-06-12.yaml":         odCalibration(u.name),
		"storage/calibrations/media_pump/media-pump-2026-05-30.yaml": pumpCalibration(u.name, "media_pump"),
		"storage/calibrations/waste_pump/waste-pump-2026-05-30.yaml": pumpCalibration(u.name, "waste_pump"),
		"storage/calibrations/stirring/stirring-cal-2026-04-02.yaml": stirringCalibration(u.name),
		"storage/estimators/od_fused/od-fused-2026-06-12.yaml":       "estimator_name: od-fused-2026-06-12\nestimator_type: od_fused\npioreactor_unit: " + u.name + "\nangles: ['45', '90', '135']\n",
		"plugins/pump_alerts.py":                                     pluginSource,
		"plugins/ui/jobs/pump_alerts.yaml":                           "display_name: Pump alerts\njob_name: pump_alerts\ndisplay: true\nsource: pump_alerts\ndescription: Sends alerts when pumps run dry.\npublished_settings: []\n",
		"ui/jobs/od_reading.yaml":                                    "display_name: Optical density\njob_name: od_reading\ndisplay: true\nsource: app\n",
		"ui/automations/dosing/chemostat.yaml":                       "display_name: Chemostat\nautomation_name: chemostat\nsource: app\nfields:\n  - key: exchange_volume_ml\n    default: 0.5\n",
		"ui/charts/implied_growth_rate.yaml":                         "chart_key: implied_growth_rate\ntitle: Implied growth rate\nsource: app\ny_axis_label: Growth rate, h⁻¹\n",
		"hardware/models/pioreactor_40ml/1.5.yaml":                   "model_name: pioreactor_40ml\nmodel_version: '1.5'\nreactor_capacity_ml: 40.0\n",
		"models/custom_20ml.yaml":                                    "model_name: custom_20ml\ndisplay_name: Custom 20 mL vial\nreactor_capacity_ml: 20.0\n",
	}
	if u.isLeader {
		files["experiment_profiles/demo_chemostat.yaml"] = "experiment_profile_name: demo_chemostat\nmetadata:\n  author: lab\ncommon:\n  jobs:\n    stirring:\n      actions:\n        - type: start\n          hours_elapsed: 0.0\n"
		files["exportable_datasets/od_readings.yaml"] = "dataset_name: od_readings\ndisplay_name: Optical density\ntable: od_readings\ntimestamp_columns: [timestamp]\n"
	}
	for _, name := range slices.Sorted(mapKeys(files)) {
		p := filepath.Join(u.dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o775); err != nil {
			return fmt.Errorf("create directory for %s: %w", name, err)
		}
		if err := os.WriteFile(p, []byte(files[name]), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(u.dir, "plugins", "exportable_datasets"), 0o775); err != nil {
		return fmt.Errorf("create plugins/exportable_datasets: %w", err)
	}
	if err := seedMetadataDB(ctx, filepath.Join(u.dir, "storage", "local_persistent_pioreactor_metadata.sqlite"), u.name); err != nil {
		return err
	}
	if u.isLeader {
		db := filepath.Join(u.dir, "storage", "pioreactor.sqlite")
		if err := SeedDatabase(ctx, db, opts.Leader, opts.Workers, opts.DBSize); err != nil {
			return err
		}
		// The consistent copy from `pio run backup_database`: always excluded
		// from exports. Kept small here; its content is never read.
		backup := append([]byte("SQLite format 3\x00"), make([]byte, 4096-16)...)
		if err := os.WriteFile(db+".backup", backup, 0o644); err != nil {
			return fmt.Errorf("write database backup: %w", err)
		}
	}
	return stampTimes(u.dir)
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// stampTimes gives every seeded path the modes of a real install (setgid
// directories 2775, files 0664) and the fixed seed mtime; the leader's
// database keeps its real mtime.
func stampTimes(dir string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o664)
		if d.IsDir() {
			mode = 0o775 | os.ModeSetgid
		}
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
		if strings.HasSuffix(p, "pioreactor.sqlite") {
			return nil
		}
		return os.Chtimes(p, seedTime, seedTime)
	})
}

func configINI(opts Options, addrs map[string]string) string {
	var b strings.Builder
	b.WriteString(`# Pioreactor cluster configuration, shared by every unit.
# Edit from the UI: Configuration -> config.ini

[PWM]
# map the PWM channels to externals
1=stirring
2=media
3=alt_media
4=waste
5=heating

[leds]
# Specify LED channels, add a name in the LED channel to use it
A=IR
B=
C=
D=

[stirring.config]
target_rpm=500
initial_duty_cycle=30
pwm_hz=200
use_rpm=1
Kp=0.05

[od_reading.config]
# how many samples should the ADC publish per second?
samples_per_second=0.2
pd_reference=2
ir_led_intensity=auto
smoothing_penalizer=6.0

[storage]
database=/home/pioreactor/.pioreactor/storage/pioreactor.sqlite
temporary_cache=/tmp/local_intermittent_pioreactor_metadata.sqlite
persistent_cache=/home/pioreactor/.pioreactor/storage/local_persistent_pioreactor_metadata.sqlite

[logging]
log_file=/var/log/pioreactor.log
ui_log_file=/var/log/pioreactor.log
# See Python's logging module for possible values
ui_log_level=INFO
console_log_level=DEBUG

[cluster.topology]
leader_hostname=`)
	b.WriteString(opts.Leader)
	b.WriteString("\nleader_address=")
	b.WriteString(hostOnly(addrs[opts.Leader]))
	b.WriteString("\n\n[cluster.addresses]\n# unit=ip, used instead of mDNS\n")
	for _, name := range append([]string{opts.Leader}, opts.Workers...) {
		fmt.Fprintf(&b, "%s=%s\n", name, hostOnly(addrs[name]))
	}
	b.WriteString(`
[ui]
port=80
proto=http
domain_alias=pioreactor.local

[mqtt]
username=pioreactor
password=raspberry
broker_address=` + opts.Leader + `.local
broker_port=1883

[dosing_automation.config]
pause_between_subdosing_actions=2.5
waste_removal_multiplier=2
max_volume_to_stop=18.0
`)
	return b.String()
}

func hostOnly(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[:i]
	}
	return addr
}

func unitConfigINI(name string) string {
	return "# Settings here override config.ini for " + name + " only.\n\n[stirring.config]\nTarget_RPM=650\n\n[od_reading.config]\nir_led_intensity=70\n"
}

func imageMetadata(leader bool) string {
	kind := "worker"
	if leader {
		kind = "leader_worker"
	}
	return "IMAGE_VERSION=26.7.0\nIMAGE_TYPE=" + kind + "\nBUILD_DATE=2026-07-15\nBASE=trixie-lite\n"
}

func odCalibration(unit string) string {
	return "calibration_name: od90-cal-2026-06-12\ncalibration_type: od\ncreated_at: 2026-06-12T14:03:11.412000Z\npioreactor_unit: " + unit +
		"\nangle: '90'\npd_channel: '2'\nir_led_intensity: 70.0\ncurve_type: poly\ncurve_data_: [0.0123, 0.9812, 0.0004]\nx: OD600\ny: Voltage\nrecorded_data:\n  x: [0.0, 0.1, 0.2, 0.4, 0.8, 1.6]\n  y: [0.0011, 0.0152, 0.0298, 0.0601, 0.1187, 0.2365]\n"
}

func pumpCalibration(unit, pump string) string {
	return "calibration_name: " + strings.ReplaceAll(pump, "_", "-") + "-2026-05-30\ncalibration_type: " + pump + "\ncreated_at: 2026-05-30T10:21:44.001000Z\npioreactor_unit: " + unit +
		"\nhz: 200.0\ndc: 100.0\nvoltage: 5.03\ncurve_type: poly\ncurve_data_: [0.0812, 0.0036]\nx: Duration\ny: Volume\nrecorded_data:\n  x: [0.5, 1.0, 1.5, 2.0]\n  y: [0.043, 0.085, 0.126, 0.169]\n"
}

func stirringCalibration(unit string) string {
	return "calibration_name: stirring-cal-2026-04-02\ncalibration_type: stirring\ncreated_at: 2026-04-02T08:00:00.000000Z\npioreactor_unit: " + unit +
		"\npwm_hz: 200.0\nvoltage: 5.01\ncurve_type: poly\ncurve_data_: [11.6, 65.3]\nx: DC %\ny: RPM\n"
}

const pluginSource = `# -*- coding: utf-8 -*-
"""Send an alert when a pump appears to run dry."""
from pioreactor.background_jobs.base import BackgroundJobContrib

__plugin_name__ = "pump_alerts"
__plugin_version__ = "0.3.1"
__plugin_summary__ = "Alerts when pumps run dry"


class PumpAlerts(BackgroundJobContrib):
    job_name = "pump_alerts"

    def __init__(self, unit, experiment, **kwargs):
        super().__init__(unit=unit, experiment=experiment, plugin_name="pump_alerts", **kwargs)
`
