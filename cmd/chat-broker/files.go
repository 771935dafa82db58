package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/chat-broker/chat-broker/broker"
	"github.com/chat-broker/chat-broker/policy"
)

// Advice for a file that is not there.
const (
	keyFileFix    = "give the path of the Chat app's service-account key (JSON), as downloaded from IAM > Service accounts > Keys"
	policyFileFix = "give the path of the policy file; 'chat-broker policy add-caller --help' shows how to start one"
)

// loadKey loads the --key file. Its errors name the flag and the file,
// say what is wrong and how to fix it, and exit 2.
func loadKey(path string) (*broker.Key, error) {
	k, err := broker.LoadKey(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fileError("--key", path, err, keyFileFix)
		}
		return nil, usageError("--key %s: %s", path, withoutPrefix(err, "broker: key "+path+": ", "broker: key: "))
	}
	return k, nil
}

// loadPolicy loads a policy file named by flag (or by an argument, flag
// ""). A file that cannot be read, or is not a valid policy, exits 2:
// the command was given it to use, not to judge (policy check judges).
func loadPolicy(flag, path string) (*policy.Policy, error) {
	p, err := policy.Load(path)
	if err == nil {
		return p, nil
	}
	var invalid *policy.Error
	if errors.As(err, &invalid) {
		if flag != "" {
			return nil, &exitError{code: exitUsage, err: fmt.Errorf("%s: %w", flag, err)}
		}
		return nil, &exitError{code: exitUsage, err: err}
	}
	return nil, fileError(flag, path, err, policyFileFix)
}
