package restore

import "time"

// Step names a stage of a restore, as the daemon's web page shows it.
type Step string

// The steps of a restore, in order.
const (
	StepCheck  Step = "check"
	StepSafety Step = "safety"
	StepUpload Step = "upload"
	StepImport Step = "import"
	StepReboot Step = "reboot"
	StepVerify Step = "verify"
)

// State is where a step is.
type State string

// The states a restore reports for its steps.
const (
	StateRunning State = "running"
	StateDone    State = "done"
	StateSkipped State = "skipped"
)

// Kind says what an Event reports, and which of its fields are set.
type Kind int

// The events of a restore. Each names the Event fields it sets besides
// Kind; Unit is always the unit restored onto, unless said otherwise.
const (
	// KindStep: Step changed to State. Safety done sets SafetyVersion and
	// SafetyStore; upload running sets Total, upload done Sent and Total.
	// Import running and verify running start a long step, which
	// KindWaitEnded and KindVerifyEnded end.
	KindStep Kind = iota
	// KindCloning: the archive of Host is rewritten to clone it onto Unit.
	KindCloning
	// KindRebuilt: the archive of Size bytes was rebuilt and every chunk
	// checked in Took.
	KindRebuilt
	// KindStreaming: the archive of Size bytes is rebuilt as it is sent.
	KindStreaming
	// KindCompressing: sent STORED, the archive would be Size bytes, more
	// than Options.DeflateAbove: it is compressed first (KindRebuilt
	// follows).
	KindCompressing
	// KindImportRunning: another import runs on the unit; the restore
	// waits up to Wait for it.
	KindImportRunning
	// KindRebootingAfter: the unit went down after that other import; the
	// restore waits up to Wait for it to come back.
	KindRebootingAfter
	// KindReady: the unit answers and nothing blocks an import.
	KindReady
	// KindSelf: the unit is the machine piosnap runs on; the verification
	// is saved in Path for the daemon to finish after the reboot.
	KindSelf
	// KindNoSafety: no safety snapshot is taken (Options.NoSafety).
	KindNoSafety
	// KindSafetyTaken: the safety snapshot SafetyVersion was taken in Took;
	// Undo is the command that restores it.
	KindSafetyTaken
	// KindRecordNotSaved: the pending verification of a restore of this
	// machine could not be saved (Err); nothing verifies it after the
	// reboot.
	KindRecordNotSaved
	// KindSent: Sent of Total bytes were uploaded so far.
	KindSent
	// KindUploadEnded: the upload ended, whether or not it succeeded.
	KindUploadEnded
	// KindUploaded: Size bytes were uploaded in Took (not rounded).
	KindUploaded
	// KindLocked: another import holds the unit's lock; the upload is tried
	// again in Wait.
	KindLocked
	// KindAcceptedNoWait: the unit accepted the archive as task TaskID, and
	// the restore does not wait (Options.NoWait). Self is set when the
	// daemon verifies it after the reboot.
	KindAcceptedNoWait
	// KindAccepted: the unit accepted the archive; the restore waits up to
	// Wait for the import and the reboot.
	KindAccepted
	// KindWaitEnded: the wait for the import and the reboot ended, whether
	// or not it succeeded.
	KindWaitEnded
	// KindRebooted: Unit (as the unit names itself) imported the archive,
	// rebooted and answered again after Took.
	KindRebooted
	// KindExported: Size more bytes of the unit's export were read for the
	// verification.
	KindExported
	// KindVerifyEnded: the verification's export ended, whether or not it
	// succeeded.
	KindVerifyEnded
	// KindRecordNotUpdated: the result of the verification of a restore of
	// this machine could not be recorded (Err).
	KindRecordNotUpdated
	// KindDiffers: the unit does not match the version: Diff.
	KindDiffers
	// KindVerified: the unit matches the version; exported and compared in
	// Took.
	KindVerified
)

// Event is something a restore did or is doing. Kind says which of the
// other fields are set.
type Event struct {
	Kind Kind
	// Step and State: the step that changed state (KindStep).
	Step  Step
	State State
	// Unit is the unit restored onto; Host is the version's host.
	Unit, Host string
	// Sent and Total are the upload's progress in bytes.
	Sent, Total int64
	// Size is a number of bytes (see the Kind).
	Size int64
	// Took is how long something took; Wait is how long the restore waits
	// at most.
	Took, Wait time.Duration
	// SafetyVersion and SafetyStore name the safety snapshot once taken.
	SafetyVersion, SafetyStore string
	// Undo is the command that undoes the restore.
	Undo string
	// TaskID is the unit's import task.
	TaskID string
	// Path is the file that carries a restore of this machine across its
	// reboot.
	Path string
	// Self is set when the unit is the machine piosnap runs on.
	Self bool
	// Err is why something could not be done.
	Err error
	// Diff is how the unit differs from the version.
	Diff *Diff
}
