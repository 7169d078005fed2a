import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))
#: The model zoo's configs ship inside the package (``kdzoo/.mim/configs``, the OpenMMLab
#: convention), so an installed kdzoo resolves ``configs/...`` without a source checkout.
MIM_DIR = osp.join(ROOT, 'kdzoo', '.mim')


def package_configs():
    """Copy configs/ into kdzoo/.mim when a wheel or an sdist is built (an editable install
    reads the checkout's configs/ directly)."""
    if not any(cmd in sys.argv for cmd in ('bdist_wheel', 'sdist', 'build')):
        return
    target = osp.join(MIM_DIR, 'configs')
    if osp.isdir(target):
        shutil.rmtree(target)
    shutil.copytree(osp.join(ROOT, 'configs'), target)


package_configs()


def read_requirements(name):
    path = osp.join(osp.dirname(__file__), 'requirements', name)
    with open(path) as f:
        return [line.strip() for line in f
                if line.strip() and not line.startswith(('#', '-'))]


def read_version():
    scope = {}
    with open(osp.join(osp.dirname(__file__), 'kdzoo', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='kdzoo',
    version=read_version(),
    description='Declarative, config-driven knowledge distillation and distiller search '
                'on MMEngine',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tools', 'configs', 'docs')),
    package_data={'kdzoo.benchmarks': ['data/*.csv'],
                  'kdzoo': ['.mim/configs/*.py', '.mim/configs/*/*.py',
                            '.mim/configs/*/*/*.py']},
    entry_points={'console_scripts': ['kdzoo-train = kdzoo.cli.train:main',
                                      'kdzoo-test = kdzoo.cli.test:main',
                                      'kdzoo-search = kdzoo.cli.search:main',
                                      'kdzoo-build-teacher-store = '
                                      'kdzoo.cli.build_teacher_store:main']},
    python_requires='>=3.9',
    install_requires=read_requirements('runtime.txt') + read_requirements('mminstall.txt'),
    extras_require={
        'tests': read_requirements('tests.txt'),
        'optional': read_requirements('optional.txt'),
        'build': read_requirements('build.txt'),
    },
    license='Apache-2.0',
)
