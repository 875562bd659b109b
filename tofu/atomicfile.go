package tofu

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// writeFileAtomic writes data to path so that a reader sees either the old
// file or the whole new one, never a part: it writes a temporary file in the
// same directory with mode perm, fsyncs it, moves it into place and fsyncs
// the directory. With replace false an existing file is left alone and the
// error wraps fs.ErrExist. No temporary file is left behind on any error.
func writeFileAtomic(path string, data []byte, perm fs.FileMode, replace bool) error {
	tmp, err := stageFile(path, data, perm)
	if err != nil {
		return err
	}
	if err := PublishFile(tmp, path, replace); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// stageFile writes data with mode perm to a new temporary file beside path,
// fsyncs and closes it, and returns its name. On error nothing is left.
func stageFile(path string, data []byte, perm fs.FileMode) (name string, err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close() // may already be closed; the first error matters
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(perm); err != nil {
		return "", err
	}
	if _, err = tmp.Write(data); err != nil {
		return "", err
	}
	if err = tmp.Sync(); err != nil {
		return "", err
	}
	if err = tmp.Close(); err != nil {
		return "", err
	}
	return tmp.Name(), nil
}

// PublishFile moves the staged file tmp to path. With replace false it
// refuses, with an error wrapping fs.ErrExist, when path exists: a hard link
// makes the check and the move one atomic step; where the file system has no
// hard links it falls back to a check followed by a rename. On error tmp is
// still in place for the caller to remove. Call SyncDir on path's directory
// afterwards to make the move durable.
func PublishFile(tmp, path string, replace bool) error {
	if replace {
		return os.Rename(tmp, path)
	}
	err := os.Link(tmp, path)
	switch {
	case err == nil:
		_ = os.Remove(tmp) // path is in place; a stray name is only clutter
		return nil
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%s: %w", path, fs.ErrExist)
	}
	if _, serr := os.Lstat(path); serr == nil {
		return fmt.Errorf("%s: %w", path, fs.ErrExist)
	}
	return os.Rename(tmp, path)
}

// SyncDir fsyncs directory dir so that a rename in it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return d.Close()
}
