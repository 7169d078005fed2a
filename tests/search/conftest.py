"""Fixtures of the search tests: a throw-away PostgreSQL server."""
import glob
import os
import os.path as osp
import shutil
import subprocess
import tempfile

import pytest

from kdzoo.search.runner import free_port


@pytest.fixture(scope='session')
def postgres_url():
    """A throw-away PostgreSQL server on 127.0.0.1 (Debian's postgresql package, which
    tools/install.sh installs), with a database for the study."""
    initdb = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'))
    if not initdb:
        pytest.skip('PostgreSQL server binaries are not installed (Debian: postgresql)')
    pytest.importorskip('psycopg2')
    bindir = osp.dirname(initdb[-1])
    root = tempfile.mkdtemp(prefix='kdzoo-pg-')
    as_user = []
    if os.geteuid() == 0:  # the server refuses to run as root
        as_user = ['runuser', '-u', 'postgres', '--']
        shutil.chown(root, 'postgres', 'postgres')
    data, port = osp.join(root, 'data'), free_port()

    def pg(*cmd):
        subprocess.run(as_user + list(cmd), check=True, capture_output=True, timeout=120)

    pg(f'{bindir}/initdb', '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync')
    pg(f'{bindir}/pg_ctl', '-D', data, '-l', osp.join(root, 'server.log'), '-w', '-o',
       f'-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off', 'start')
    try:
        pg(f'{bindir}/createdb', '-h', '127.0.0.1', '-p', str(port), '-U', 'postgres',
           'kdzoo')
        yield f'postgresql+psycopg2://postgres@127.0.0.1:{port}/kdzoo'
    finally:
        pg(f'{bindir}/pg_ctl', '-D', data, '-m', 'immediate', 'stop')
        shutil.rmtree(root, ignore_errors=True)
