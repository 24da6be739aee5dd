"""illustration-gan command line (the same program as the `illustration-gan` command).

  python train.py --TYPE train --path faces/ --batch_size 64 --epochs 50
  python train.py --TYPE train                     # built-in toy faces, a few minutes on a CPU
  python train.py --TYPE generate --img_num 100    # newest run unless --run_dir / --checkpoint
  python train.py --help                           # every command's flags, grouped

The program lives in illustration_gan/cli.py.
"""

from illustration_gan import cli

if __name__ == "__main__":
    cli.run()
