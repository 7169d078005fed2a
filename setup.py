import os.path as osp

from setuptools import find_packages, setup


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
    package_data={'kdzoo.benchmarks': ['data/*.csv']},
    python_requires='>=3.9',
    install_requires=read_requirements('runtime.txt') + read_requirements('mminstall.txt'),
    extras_require={
        'tests': read_requirements('tests.txt'),
        'optional': read_requirements('optional.txt'),
        'build': read_requirements('build.txt'),
    },
    license='Apache-2.0',
)
